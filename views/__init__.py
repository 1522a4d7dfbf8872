"""Presentation: the texts (gettext, HTML) and keyboards of each feature, apart from the handlers.

Views import services, models and aiogram's i18n and types, never `handlers` (handlers import
views: the package `handlers` imports every router, so a view importing it would go round in a
circle). A keyboard that needs a handler's callback data gets the class as an argument.
"""
