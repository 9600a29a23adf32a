"""The domain's exceptions: what went wrong with one record, named by what the caller should do."""


class DomainError(Exception):
    """A record cannot be synchronized as it is: list it as an error; retrying unchanged will not help."""


class TransformError(DomainError):
    """A transform could not handle a value."""


class LookupNotCoupled(DomainError):
    """A referenced record is not coupled in the mapping that the lookup goes through."""
