from tests.export.fixtures import data_dir, history_model_dir, history_run, mf_model_dir, mf_run  # noqa: F401
