"""Domain errors raised by services; handlers map them to localized messages."""


class DomainError(Exception):
    """Base class of every rule a request broke."""


class InvalidTimezone(DomainError):
    def __init__(self, value: str) -> None:
        super().__init__(value)
        self.value = value


class InvalidCurrency(DomainError):
    def __init__(self, value: str) -> None:
        super().__init__(value)
        self.value = value


class InvalidLanguage(DomainError):
    def __init__(self, value: str) -> None:
        super().__init__(value)
        self.value = value


class NotGroupAdmin(DomainError):
    """The user is not the owner or an administrator of the group."""


class GroupNotFound(DomainError):
    """Unknown group, or one the bot is no longer in."""


class DealNotFound(DomainError):
    """No such deal (or, to someone without rights, one they may not know of)."""


class NotDealOwner(DomainError):
    """The person does not manage the deal now (services.rights)."""
