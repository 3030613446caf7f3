"""memnet_tf.training"""
