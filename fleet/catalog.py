"""The models we serve, their regions and their prices.

Prices are rows with an ``effective_from`` time: a price change adds a row, so a past request
keeps the price it was served at. All money is ``Decimal``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet import audit
from fleet.clock import Clock, utcnow
from fleet.errors import Conflict, InvalidRequest, ModelNotFound
from fleet.tables import Model, ModelPrice, Region

_MODEL_NAME_MAX = 128


class CatalogService:
    """Models, regions and prices; reads are cached in-process because every request reads
    its model, and the catalog changes only through the admin API (which clears the cache)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, clock: Clock | None = None):
        self._sessions = sessions
        self._clock = clock
        self._models: dict[str, Model] | None = None

    # -- reads (hot path) ------------------------------------------------------------------
    async def models(self) -> dict[str, Model]:
        """All served models by name (cached until the catalog changes)."""
        if self._models is None:
            async with self._sessions() as s:
                rows = (await s.execute(select(Model).order_by(Model.name))).scalars().all()
            self._models = {m.name: m for m in rows}
        return self._models

    async def get_model(self, name: str) -> Model:
        model = (await self.models()).get(name)
        if model is None:
            raise ModelNotFound(f"The model '{name}' does not exist", param="model")
        return model

    def invalidate(self) -> None:
        """Drop the cached catalog; the next read loads it again."""
        self._models = None

    # -- writes (admin) --------------------------------------------------------------------
    async def create_model(
        self,
        name: str,
        *,
        context_length: int = 8192,
        default_max_tokens: int = 1024,
        input_per_1m: Decimal = Decimal(0),
        output_per_1m: Decimal = Decimal(0),
        region: str = "*",
        actor: str,
    ) -> Model:
        if not name or len(name) > _MODEL_NAME_MAX or name.strip() != name:
            raise InvalidRequest(
                "model name must be 1-128 characters, no outer spaces", param="name"
            )
        if context_length < 1 or not 1 <= default_max_tokens <= context_length:
            raise InvalidRequest(
                "need context_length >= 1 and 1 <= default_max_tokens <= context_length",
                param="default_max_tokens",
            )
        async with self._sessions() as s:
            model = Model(
                name=name, context_length=context_length, default_max_tokens=default_max_tokens
            )
            s.add(model)
            try:
                await s.flush()
            except IntegrityError:
                raise Conflict(f"model {name!r} already exists", param="name") from None
            s.add(_price(name, region, input_per_1m, output_per_1m, utcnow(self._clock)))
            audit.record(
                s,
                actor=actor,
                action="model.create",
                target_type="model",
                target_id=name,
                detail={
                    "context_length": context_length,
                    "input_per_1m": str(input_per_1m),
                    "output_per_1m": str(output_per_1m),
                },
            )
            await s.commit()
        self.invalidate()
        return model

    async def delete_model(self, name: str, *, actor: str) -> None:
        await self.get_model(name)
        async with self._sessions() as s:
            await s.execute(delete(ModelPrice).where(ModelPrice.model == name))
            await s.execute(delete(Model).where(Model.name == name))
            audit.record(s, actor=actor, action="model.delete", target_type="model", target_id=name)
            await s.commit()
        self.invalidate()

    async def set_price(
        self,
        model: str,
        *,
        input_per_1m: Decimal,
        output_per_1m: Decimal,
        region: str = "*",
        effective_from: datetime | None = None,
        actor: str,
    ) -> ModelPrice:
        """Add a price that applies from ``effective_from`` (now by default) on."""
        await self.get_model(model)
        if input_per_1m < 0 or output_per_1m < 0:
            raise InvalidRequest("prices cannot be negative", param="input_per_1m")
        row = _price(
            model, region, input_per_1m, output_per_1m, effective_from or utcnow(self._clock)
        )
        async with self._sessions() as s:
            s.add(row)
            audit.record(
                s,
                actor=actor,
                action="model.price",
                target_type="model",
                target_id=model,
                detail={
                    "region": region,
                    "input_per_1m": str(input_per_1m),
                    "output_per_1m": str(output_per_1m),
                },
            )
            await s.commit()
        return row

    async def prices(self, model: str) -> Sequence[ModelPrice]:
        async with self._sessions() as s:
            q = (
                select(ModelPrice)
                .where(ModelPrice.model == model)
                .order_by(ModelPrice.region, ModelPrice.effective_from)
            )
            return (await s.execute(q)).scalars().all()

    async def price_at(self, model: str, region: str, at: datetime) -> ModelPrice | None:
        """The price in force for ``model`` in ``region`` at ``at`` (a region's own price wins
        over the ``*`` default)."""
        async with self._sessions() as s:
            for reg in (region, "*"):
                q = (
                    select(ModelPrice)
                    .where(
                        ModelPrice.model == model,
                        ModelPrice.region == reg,
                        ModelPrice.effective_from <= at,
                    )
                    .order_by(ModelPrice.effective_from.desc())
                    .limit(1)
                )
                row = (await s.execute(q)).scalars().first()
                if row is not None:
                    return row
        return None

    async def ensure_region(self, name: str, *, cloud: str = "local") -> Region:
        async with self._sessions() as s:
            region = await s.get(Region, name)
            if region is None:
                region = Region(name=name, cloud=cloud)
                s.add(region)
                await s.commit()
            return region


def _price(model: str, region: str, inp: Decimal, out: Decimal, at: datetime) -> ModelPrice:
    return ModelPrice(
        model=model,
        region=region,
        input_per_1m=Decimal(inp),
        output_per_1m=Decimal(out),
        effective_from=at,
    )
