"""memnet_tf.eval"""
