"""The Ultralytics seam: the only package of xray_exp that imports `ultralytics`."""
