"""Watching cameras: reading their frames (RTSP, MJPEG, snapshot URLs), the motion-gated
analysis of each camera, and the events it produces.

Sits between the surfaces (HTTP, MQTT, which show and publish what a camera saw) and the data
plane (the detector runs through `serving.Service`, sharing its cores with requests).
"""
