"""memnet_tf.data"""
