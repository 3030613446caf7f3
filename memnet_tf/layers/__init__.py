"""memnet_tf.layers"""
