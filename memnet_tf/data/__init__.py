"""Training data: synthetic videos, VID/GOT-10k/OTB readers, TFRecords and the tf.data pipeline."""
