"""Unbound extensions; the factory binds them to an app."""

from __future__ import annotations

from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect

from portal_app.orm import Base
from portal_app.replica import RoutingSession

db = SQLAlchemy(model_class=Base, session_options={"class_": RoutingSession})
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
LIMIT_KEY_PREFIX = "portico-limits"
limiter = Limiter(key_func=get_remote_address, strategy="moving-window", key_prefix=LIMIT_KEY_PREFIX)
babel = Babel()
