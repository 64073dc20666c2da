"""Key-encryption keys for the credential store.

CREDENTIALS_ENCRYPTION_KEY holds one or more Fernet keys, comma-separated, newest first. Values
are encrypted with the first and decrypted with any (MultiFernet), so rotation is: put a new key
first, run `manage.py rotate_credentials_key`, then drop the old key.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from apps.core.exceptions import ApplicationError


class CredentialStoreUnavailable(ApplicationError):
    status_code = 409
    error_code = "CREDENTIAL_STORE_UNAVAILABLE"
    default_message = "The encrypted credential store has no key-encryption key (CREDENTIALS_ENCRYPTION_KEY)."
    default_suggested_fix = (
        "Set CREDENTIALS_ENCRYPTION_KEY to a Fernet key (python -c 'from cryptography.fernet import Fernet; "
        "print(Fernet.generate_key().decode())'), or set the provider's variables in the environment instead."
    )


class CredentialDecryptFailed(ApplicationError):
    status_code = 409
    error_code = "CREDENTIAL_DECRYPT_FAILED"
    default_message = "A stored credential cannot be decrypted with the configured keys."
    default_suggested_fix = (
        "Put the key it was encrypted with back into CREDENTIALS_ENCRYPTION_KEY (after the new one), "
        "or enter the credential again."
    )


def multifernet() -> MultiFernet:
    keys = [k for k in settings.CREDENTIALS_ENCRYPTION_KEY if k]
    if not keys:
        raise CredentialStoreUnavailable()
    try:
        return MultiFernet([Fernet(k.encode()) for k in keys])
    except ValueError:
        raise CredentialStoreUnavailable(
            "CREDENTIALS_ENCRYPTION_KEY is not a valid Fernet key (32 url-safe base64-encoded bytes)."
        ) from None


def encrypt(value: str) -> str:
    return multifernet().encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return multifernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise CredentialDecryptFailed() from None


def rotate(token: str) -> str:
    try:
        return multifernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise CredentialDecryptFailed() from None
