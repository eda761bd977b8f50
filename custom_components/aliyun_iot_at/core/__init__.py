"""Protocol core: drives an AT module until the Aliyun IoT Platform sees a device.

Nothing in this package imports Home Assistant, so it can be published on its own.
"""
