"""mammoscreen: screening-mammography AI - run, explain, train and evaluate published classifiers."""

__version__ = "0.1.0"
