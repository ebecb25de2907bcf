"""`replyflow connect woocommerce` and `replyflow woocommerce reconcile`."""

from __future__ import annotations


import click

from bridge.cli_connect import connect

__all__ = ["woocommerce"]


@connect.command("woocommerce")
@click.option("--url", "store_url", required=True, help="The store's address, e.g. https://shop.example")
@click.option("--key", "consumer_key", help="REST API consumer key (ck_...), Read/Write.")
@click.option("--secret", "consumer_secret", help="REST API consumer secret (cs_...).")
@click.option("--bookings", is_flag=True, help="Also subscribe to new WooCommerce Bookings.")
def connect_woocommerce(store_url: str, consumer_key: str | None, consumer_secret: str | None,
                        bookings: bool) -> None:
    """With --key/--secret: store the keys (sealed) and register the webhooks now. Without them:
    print the address that sends the store admin through WooCommerce's approval screen."""
    from connectors.woocommerce.install import store_address
    from core.errors import PayloadError
    from bridge.runtime import get_runtime

    try:
        store_url = store_address(store_url)
    except PayloadError as exc:
        raise click.BadParameter(str(exc), param_hint="--url") from None
    rt = get_runtime()
    if not (consumer_key and consumer_secret):
        if consumer_key or consumer_secret:
            raise click.UsageError("give both --key and --secret, or neither (to approve in the store)")
        from bridge.woocommerce_connect import INVITE_TTL, invite

        try:
            link = invite(rt, store_url)
        except PayloadError as exc:
            raise click.BadParameter(str(exc), param_hint="--url") from None
        click.echo(f"Open this address as the store's admin and approve replyflow (single use, valid "
                   f"{int(INVITE_TTL.total_seconds() // 60)} minutes):\n  {link}")
        return
    from bridge.woocommerce_connect import connect as do_connect

    extra = {"bookings": True} if bookings else {}
    ids = do_connect(rt, store_url, consumer_key, consumer_secret, **extra)
    for topic, hook_id in sorted(ids.items()):
        click.echo(f"webhook {hook_id}: {topic}")
    click.echo(f"connected {store_url.rstrip('/')}: {len(ids)} webhooks deliver to "
               f"{rt.settings.public_url}/webhooks/woocommerce")


@click.group()
def woocommerce() -> None:
    """WooCommerce stores connected to this bridge."""


@woocommerce.command("reconcile")
@click.option("--account", help="One store (host as shown by connect); default: every connected store.")
def reconcile_cmd(account: str | None) -> None:
    """Read back recent unpaid and paid orders that no webhook brought, and process them."""
    from connectors.woocommerce.mapper import PLATFORM
    from core.installations import active
    from core.store import session_scope
    from bridge.runtime import get_runtime
    from bridge.woocommerce_sync import reconcile

    rt = get_runtime()
    with session_scope(rt.db) as s:
        accounts = [account] if account else [i.account for i in active(s, PLATFORM)]
    if not accounts:
        raise click.ClickException("no WooCommerce store is connected (replyflow connect woocommerce ...)")
    for name in accounts:
        counts = reconcile(rt, name)
        click.echo(f"{name}: {counts['seen']} orders seen, {counts['recorded']} new, {counts['malformed']} malformed")
    drain = getattr(rt.queue, "drain", None)
    if drain:
        drain()
