"""memnet_tf.eval: benchmark readers, OPE runner, got10k-equal metrics and reports."""
