"""Errors of the device registry.

DeviceError
+-- DeviceNotFound        no device with that id
+-- DeviceExists          the id is taken
+-- InvalidDevice         a name that cannot be a device id
+-- CertificateError      a certificate, key or CSR that is malformed, foreign or not valid now
|                         (the CA's wrapping of fleetmind.certificates.CertificateError)
+-- ClaimRefused          a claim token that is unknown, expired or used up
"""


class DeviceError(Exception):
    pass


class DeviceNotFound(DeviceError):
    pass


class DeviceExists(DeviceError):
    pass


class InvalidDevice(DeviceError):
    pass


class CertificateError(DeviceError):
    pass


class ClaimRefused(DeviceError):
    pass
