"""The code of the pyfunc model (MLflow "models from code"): loading runs this file,
never unpickles anything. See :mod:`harness.pyfunc`."""
from mlflow.models import set_model

from harness.pyfunc import BundleModel

set_model(BundleModel())
