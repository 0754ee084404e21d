"""The code of the pyfunc model (MLflow "models from code"): loading runs this file,
never unpickles anything. See :mod:`plugins.tracking.pyfunc`."""
from mlflow.models import set_model

from plugins.tracking.pyfunc import BundleModel

set_model(BundleModel())
