"""Readers of other frameworks' files: Keras .h5 (and a Keras graph interpreter to PyTorch), Caffe .caffemodel."""
