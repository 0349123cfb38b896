"""In-process tests, one file per module: tests/unit/<package>/test_<module>.py tests usermetrics/<package>/<module>.py.

Modules outside usermetrics/ mirror their own place (monitor_site/, scripts/, static/).
"""
