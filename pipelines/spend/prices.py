"""The AWS price table: per region, Lambda, SQS and API Gateway request and duration prices (USD).

The shipped table (prices.json) names its date and sources. SPEND_PRICES_FILE replaces it with a
file of the same shape. A region the table does not list has no prices: the parts it would price
are unknown, never priced as another region.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

SHIPPED = Path(__file__).resolve().parent / "prices.json"


@dataclass(frozen=True)
class RegionPrices:
    """One region's prices; None where the table gives none."""

    region: str
    lambda_requests_per_million: float | None
    lambda_gb_second: dict[str, float]  # by architecture: x86_64, arm64
    sqs_standard_per_million: float | None
    sqs_fifo_per_million: float | None
    api_rest_per_million: float | None
    api_http_per_million: float | None


@dataclass(frozen=True)
class PriceTable:
    as_of: str
    sources: tuple[str, ...]
    regions: dict[str, RegionPrices]

    def for_region(self, region: str) -> RegionPrices | None:
        return self.regions.get(region)


def _price(value, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ImproperlyConfigured(f"The price {where} is {value!r}: give a number of US dollars, or null.")
    return float(value)


def parse(data: dict, origin: str = "the price table") -> PriceTable:
    """A PriceTable from the JSON's data; a malformed table raises ImproperlyConfigured saying where."""
    try:
        regions = {}
        for name, r in data["regions"].items():
            gbs = r.get("lambda_gb_second") or {}
            regions[name] = RegionPrices(
                region=name,
                lambda_requests_per_million=_price(r.get("lambda_requests_per_million"), f"{name}.lambda_requests"),
                lambda_gb_second={
                    a: p for a, v in gbs.items() if (p := _price(v, f"{name}.gb_second.{a}")) is not None
                },
                sqs_standard_per_million=_price(r.get("sqs_standard_per_million"), f"{name}.sqs_standard"),
                sqs_fifo_per_million=_price(r.get("sqs_fifo_per_million"), f"{name}.sqs_fifo"),
                api_rest_per_million=_price(r.get("api_rest_per_million"), f"{name}.api_rest"),
                api_http_per_million=_price(r.get("api_http_per_million"), f"{name}.api_http"),
            )
        return PriceTable(as_of=str(data.get("as_of", "")), sources=tuple(data.get("sources", ())), regions=regions)
    except (KeyError, AttributeError, TypeError) as exc:
        raise ImproperlyConfigured(
            f"{origin} is not shaped like pipelines/spend/prices.json ({exc!r}): fix SPEND_PRICES_FILE or unset it."
        ) from None


@cache
def _load(path: str) -> PriceTable:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ImproperlyConfigured(f"The price table {path} cannot be read ({exc}): fix SPEND_PRICES_FILE.") from None
    return parse(data, path)


def table() -> PriceTable:
    """The price table in force: SPEND_PRICES_FILE when set, else the shipped one."""
    return _load(getattr(settings, "SPEND_PRICES_FILE", "") or str(SHIPPED))
