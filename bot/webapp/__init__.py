"""The Mini App storefront served by the bot's own aiohttp server: static files under
/app/ and a small JSON API under /app/api/ (routes.py), every call authenticated by the
initData Telegram gives the page (auth.py), writes rate-limited per person (limits.py)."""
