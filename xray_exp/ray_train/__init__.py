"""Ray Train for Ultralytics YOLO12: data-parallel training over Ray workers (`python -m xray_exp.ray_main
mode=train`). trainer.py adopts Ray's process group; worker.py is each rank's loop; driver.py the run."""
