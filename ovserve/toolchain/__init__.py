"""Model toolchain: get a model onto the machine as OpenVINO IR and compress it.

Used by ``scripts/download_model.py`` and ``scripts/compress_model.py``. Nothing here is
imported by the serving path, so serving needs neither torch nor transformers.
"""
