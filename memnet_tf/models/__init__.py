"""memnet_tf.models"""
