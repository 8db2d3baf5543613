"""Training and evaluation of segmentation models: the loop, loaders and seeding, devices and DDP,
checkpoints, the objective and the metric totals that training and the evaluate stage share."""
