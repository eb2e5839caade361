"""kefu.webrtc"""
