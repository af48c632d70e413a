"""Network pieces shared by several models: ResNet trunks, DenseNet-121, TensorFlow "SAME" padding."""
