"""memnet_tf.geometry"""
