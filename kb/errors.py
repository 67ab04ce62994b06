"""Domain exceptions; the API maps each to one HTTP status with the message as it is."""


class KbError(Exception):
    status_code = 400

    def __init__(self, message: str, **detail: object):
        super().__init__(message)
        self.message = message
        self.detail = detail


class NotFound(KbError):
    status_code = 404


class Conflict(KbError):
    """An illegal state transition or a clash with what is stored."""

    status_code = 409


class PermissionDenied(KbError):
    status_code = 403


class InvalidInput(KbError):
    status_code = 422
