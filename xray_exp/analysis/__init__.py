"""Analysis helpers behind the notebooks: pandas tables and matplotlib figures, no notebook state.

    from xray_exp.analysis import cv, dataset, predictions, runs
    from xray_exp.project import project_root
    uri = default_tracking_uri()      # xray_exp.mlops.client: $MLFLOW_TRACKING_URI or sqlite:///<root>/outputs/mlflow.db
    runs.runs_table(uri, "YOLO12-Training")              # notebooks/01_runs.ipynb
    cv.plot_cv_spread(cv.find_cvs(project_root())["cv_dir"][0])   # notebooks/01_runs.ipynb: a cross-validation
    model = predictions.load_registered_model("yolo12n", "development", uri)   # notebooks/02_predictions.ipynb
    dataset.class_balance(dataset.default_data_yaml())   # notebooks/03_dataset.ipynb

Figures are `matplotlib.figure.Figure` objects made without pyplot (no global figure state); a notebook
shows one as the cell's last expression after `%matplotlib inline`, a script saves it with `fig.savefig(path)`.
"""

import warnings

from xray_exp.analysis import cv, dataset, predictions, runs

__all__ = ["cv", "dataset", "predictions", "runs"]

# tqdm.auto, imported by MLflow, warns in every notebook without ipywidgets; its text progress bars work.
warnings.filterwarnings("ignore", message="IProgress not found")
