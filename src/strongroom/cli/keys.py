"""``strongroom init`` and ``strongroom key rotate``: binding a store to its master key."""

from __future__ import annotations

__all__ = ["initialise", "rotate"]

import click

from strongroom.cli.context import AppContext
from strongroom.errors import KeyUnavailableError, UsageError


def _passphrase_from(app: AppContext, variable: str, *, confirm: bool) -> str:
    value = app.environ.get(variable)
    file_var = f"{variable}_FILE"
    if value is None and app.environ.get(file_var):
        with open(app.environ[file_var], encoding="utf-8") as fh:
            value = fh.read()
        value = value[:-1] if value.endswith("\n") else value
    if value is None:
        value = click.prompt("Passphrase", hide_input=True, confirmation_prompt=confirm, err=True)
    return value


def initialise(app: AppContext, *, use_passphrase: bool) -> None:
    from strongroom.crypto.providers import (
        EnvironmentKeyProvider,
        KeyFileProvider,
        KeyProvider,
        PassphraseProvider,
    )
    from strongroom.service import META_KDF_PARAMS, META_MASTER_KEY_ID, Service

    app.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    store = app.open_store(create=True)
    try:
        bound = store.get_meta(META_MASTER_KEY_ID)
        kdf = store.get_meta(META_KDF_PARAMS)
        provider: KeyProvider
        created_key = False
        if app.environ.get("STRONGROOM_MASTER_KEY"):
            provider = EnvironmentKeyProvider(app.environ["STRONGROOM_MASTER_KEY"])
        elif (
            use_passphrase or app.environ.get("STRONGROOM_PASSPHRASE") or app.environ.get("STRONGROOM_PASSPHRASE_FILE")
        ):
            if kdf is None:
                if bound is not None:
                    raise KeyUnavailableError(
                        "this store was initialised with a key file or STRONGROOM_MASTER_KEY, not a passphrase",
                        hint="unset STRONGROOM_PASSPHRASE and drop --passphrase",
                    )
                kdf = PassphraseProvider.new_params()
                store.set_meta(META_KDF_PARAMS, kdf)
            provider = PassphraseProvider(_passphrase_from(app, "STRONGROOM_PASSPHRASE", confirm=True), kdf)
        else:
            keyfile = KeyFileProvider(app.home / "key")
            if not (app.home / "key").exists():
                if bound is not None:
                    raise KeyUnavailableError(
                        f"this store is bound to master key {bound}, but {app.home / 'key'} is missing",
                        hint="restore the key file from your backup; a new key could not read the existing secrets",
                    )
                keyfile.create()
                created_key = True
            provider = keyfile
        service = Service(store, load_keyring=lambda _s: provider.load(), actor=app.actor)
        key_id = service.initialise_keys()
    finally:
        store.close()
    where = app.store_url.split("@")[-1] if app.store_url else str(app.home / "store.db")
    click.echo(f"Strongroom store ready at {where}.")
    click.echo(f"Master key: {provider.description} (id {key_id}).")
    if created_key:
        click.echo("Back up the key file: without it the secrets in this store cannot be read.")
    if bound is not None:
        click.echo("The store was already initialised; its schema is up to date.")


def rotate(app: AppContext) -> None:
    from strongroom.crypto.providers import EnvironmentKeyProvider, KeyFileProvider, PassphraseProvider
    from strongroom.service import META_KDF_PARAMS

    service = app.service()
    store = service.store
    provider = app.key_provider(store)
    service.keyring()  # fail now, before anything changes, if the current key is wrong
    if isinstance(provider, KeyFileProvider):
        new = provider.add_key()
        count = service.rewrap_data_keys(provider.load())
        provider.retire_keys(keep=new.key_id)
        click.echo(f"Re-wrapped {count} data key(s) under new master key {new.key_id}; {provider.description} updated.")
        return
    if isinstance(provider, EnvironmentKeyProvider):
        value = app.environ.get("STRONGROOM_NEW_MASTER_KEY")
        if not value:
            raise UsageError(
                "set STRONGROOM_NEW_MASTER_KEY to the new key",
                hint="make one with `strongroom key generate`",
            )
        ring = EnvironmentKeyProvider(value, variable="STRONGROOM_NEW_MASTER_KEY").load()
        count = service.rewrap_data_keys(ring)
        click.echo(
            f"Re-wrapped {count} data key(s) under master key {ring.primary.key_id}. "
            "Set STRONGROOM_MASTER_KEY to the new key now; the old one no longer opens this store."
        )
        return
    if isinstance(provider, PassphraseProvider):
        kdf = store.get_meta(META_KDF_PARAMS)
        assert kdf is not None
        new_pass = _passphrase_from(app, "STRONGROOM_NEW_PASSPHRASE", confirm=True)
        ring = PassphraseProvider(new_pass, kdf).load()
        count = service.rewrap_data_keys(ring)
        click.echo(
            f"Re-wrapped {count} data key(s) under the new passphrase (key id {ring.primary.key_id}). "
            "Use the new passphrase from now on."
        )
        return
    raise UsageError(f"{provider.description} does not support rotation")
