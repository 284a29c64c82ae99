"""Inputs from files: images for the model and PDF pages rendered to
images. Nothing here imports FiftyOne."""
