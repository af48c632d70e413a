"""Explaining predictions: figures of saliency maps and ROI patches, localisation."""
