"""memnet_tf.tracking"""
