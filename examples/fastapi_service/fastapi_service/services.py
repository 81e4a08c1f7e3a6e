"""What the endpoints call: users, with each user cached in Redis (blockmon's cache)."""

from __future__ import annotations

from uuid import uuid4

from blockmon import Cache

from fastapi_service.repositories import User, UserRepository


class UserService:
    def __init__(self, user_repository: UserRepository, cache: Cache) -> None:
        self._repository = user_repository
        self._cache = cache

    async def get_users(self) -> list[User]:
        return await self._repository.get_all()

    async def get_user_by_id(self, user_id: int) -> User:
        cached = await self._cache.get_json(f"user:{user_id}")
        if cached is not None:
            return User(**cached)
        user = await self._repository.get_by_id(user_id)
        await self._cache.set_json(f"user:{user_id}", user.__dict__, ttl=60)
        return user

    async def create_user(self) -> User:
        return await self._repository.add(email=f"{uuid4()}@example.com")

    async def delete_user_by_id(self, user_id: int) -> None:
        await self._repository.delete_by_id(user_id)
        await self._cache.delete(f"user:{user_id}")
