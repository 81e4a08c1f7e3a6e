from sqlalchemy import text


async def test_container_gives_engine_and_cache(blockmon_container):
    engine = await blockmon_container.postgres.engine()
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT 1"))).scalar() == 1
    cache = await blockmon_container.redis.cache()
    await cache.set("k", "v", ttl=10)
    assert await cache.get("k") == b"v"
