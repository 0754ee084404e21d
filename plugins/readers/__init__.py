"""Readers of other tools' AU outputs, one module per tool (``auh score --from NAME``).

Each maps the tool's columns onto the ENC-2020 AUs it covers; matching rows
to truth images, choosing a face and binarizing are the same for every tool
(:mod:`leaderboard.other_tools`). A third-party reader is one file with an
``auh_readers`` hook returning ``{name: factory}``.
"""
from harness import hookimpl


@hookimpl
def auh_readers():
    from plugins.readers.libreface import LibreFaceReader
    from plugins.readers.openface2 import OpenFace2Reader
    from plugins.readers.openface3 import OpenFace3Reader
    from plugins.readers.opengraphau import OpenGraphAUReader
    from plugins.readers.pyfeat import PyFeatReader

    return {"openface2": OpenFace2Reader, "openface3": OpenFace3Reader, "pyfeat": PyFeatReader,
            "libreface": LibreFaceReader, "opengraphau": OpenGraphAUReader}
