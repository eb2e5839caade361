"""kefu.billing"""
