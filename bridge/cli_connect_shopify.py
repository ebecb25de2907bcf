"""`replyflow connect shopify`: connect a shop with a custom-app token, or check (and repair) its
webhook subscriptions."""

from __future__ import annotations

import click

from bridge.cli_connect import connect

__all__ = ["connect"]


def _runtime():
    from bridge.runtime import get_runtime

    return get_runtime()


def _print_check(result, fixing: bool) -> None:
    from connectors.shopify.install import TOPICS

    names = {v: k for k, v in TOPICS.items()}
    click.echo(f"webhook address: {result.uri}")
    for topic in TOPICS.values():
        if topic in result.present:
            state = "registered"
        elif topic in result.created:
            state = "registered now"
        elif topic in result.failed:
            state = f"MISSING (Shopify refused: {result.failed[topic]})"
        else:
            state = "MISSING"
        click.echo(f"  {names[topic]:<18} {state}")
    for sub in result.elsewhere:
        click.echo(f"  (also: {sub.topic} -> {sub.uri})")
    if result.missing and not fixing:
        click.echo(f"{len(result.missing)} missing: run `replyflow connect shopify --check --fix` to register them")


@connect.command("shopify")
@click.option("--shop", help="The shop's domain, e.g. lumen-tea-co.myshopify.com.")
@click.option("--token", envvar="SHOPIFY_ACCESS_TOKEN", help="A custom app's Admin API access token (shpat_...).")
@click.option("--check", "check_only", is_flag=True, help="Show which webhook subscriptions are registered.")
@click.option("--fix", is_flag=True, help="With --check: register the missing subscriptions again.")
@click.option("--workspace", default="default", show_default=True)
def shopify(shop: str | None, token: str | None, check_only: bool, fix: bool, workspace: str) -> None:
    """Connect a shop with a custom-app token (the token is stored encrypted), or --check it."""
    from sqlalchemy import select

    from bridge.shopify_app import client_for, connect_shop
    from connectors.shopify import install as shop_install
    from core.errors import PermanentError, RetryableError
    from core.installations import NotInstalled, active, info_of
    from core.store import session_scope

    rt = _runtime()
    if not rt.settings.public_url.startswith("https://"):
        click.echo(f"warning: REPLYFLOW_PUBLIC_URL is {rt.settings.public_url}; Shopify only delivers webhooks "
                   "to HTTPS addresses", err=True)
    if not rt.settings.shopify_webhook_secrets:
        click.echo("warning: SHOPIFY_WEBHOOK_SECRET is not set (the app's API secret key): the bridge refuses "
                   "Shopify's webhooks until it is", err=True)
    if not check_only:
        if not shop or not token:
            raise click.UsageError("give --shop and --token (or --check)")
        try:
            shop = shop_install.valid_shop(shop)
            result = connect_shop(rt, shop, token, workspace=workspace, how="custom-app token")
        except (PermanentError, RetryableError) as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"connected {shop} (token stored encrypted)")
        _print_check(result, fixing=True)
        if not result.complete:
            raise SystemExit(1)
        return
    with session_scope(rt.db) as s:
        shops = [shop_install.valid_shop(shop)] if shop else [i.account for i in active(s, "shopify")]
        infos = []
        for name in shops:
            try:
                infos.append(info_of(s, "shopify", name, rt.sealer))
            except NotInstalled as exc:
                if shop:
                    raise click.ClickException(str(exc)) from None
                click.echo(f"{name}: no token (its webhooks are only verified with the secret): skipped")
    if not infos:
        raise click.ClickException("no shop is connected (replyflow connect shopify --shop ... --token ...)")
    incomplete = False
    for info in infos:
        click.echo(f"{info.account}:")
        uri = shop_install.webhook_uri(rt.settings.public_url)
        try:
            with client_for(rt, info.account, info.credentials["access_token"],
                            api_version=info.config.get("api_version"), base_url=info.config.get("api_base")) as client:
                result = shop_install.register(client, uri) if fix else shop_install.check(client, uri)
        except (PermanentError, RetryableError) as exc:
            raise click.ClickException(f"{info.account}: {exc}") from None
        _print_check(result, fixing=fix)
        incomplete |= not result.complete
        if fix:
            with session_scope(rt.db) as s:
                from core.store.models import Installation

                inst = s.scalar(select(Installation).where(Installation.id == info.id))
                hooks = {**result.present, **result.created}
                inst.config = {**inst.config, "webhooks": {t: sub.id for t, sub in sorted(hooks.items())}}
    if incomplete:
        raise SystemExit(1)
