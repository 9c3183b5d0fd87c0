"""Portal forms (Flask-WTF: every form carries a CSRF token, R-SEC-2)."""

from __future__ import annotations

from functools import cached_property

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from markupsafe import Markup
from wtforms import EmailField, HiddenField, PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import AnyOf, DataRequired, Length

from portal_app.i18n import LANGUAGES
from portal_app.services.validation import TIMEZONES

# The policy's own limit (256, R-LOG-10) is checked by the service, which says so clearly;
# this only keeps absurd bodies away from the hasher.
MAX_LENGTH = 4096


class LoginForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[DataRequired(), Length(max=254)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=256)])
    next = HiddenField()


class NewPasswordForm(FlaskForm):
    password = PasswordField(_l("New password"), validators=[DataRequired(), Length(max=MAX_LENGTH)])
    confirm = PasswordField(_l("New password, again"), validators=[DataRequired(), Length(max=MAX_LENGTH)])


class ForgotPasswordForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[DataRequired(), Length(max=254)])


class ConfirmForm(FlaskForm):
    """A form with nothing but its CSRF token (logout, ask for a new invitation)."""

    @cached_property
    def hidden(self) -> Markup:
        """``hidden_tag()`` rendered once: a page with a form per to-do repeats the same token."""
        return self.hidden_tag()


LANGUAGE_CHOICES = [SelectChoice(code, name) for code, name in LANGUAGES.items()]


class ProfileForm(FlaskForm):
    timezone = SelectField(
        _l("Time zone"),
        choices=[SelectChoice(tz, tz.replace("_", " ")) for tz in TIMEZONES],
        validators=[DataRequired(), AnyOf(TIMEZONES)],
    )
    language = SelectField(_l("Language"), choices=LANGUAGE_CHOICES, validators=[AnyOf(list(LANGUAGES))])


class ChangePasswordForm(FlaskForm):
    current = PasswordField(_l("Current password"), validators=[DataRequired(), Length(max=256)])
    password = PasswordField(_l("New password"), validators=[DataRequired(), Length(max=MAX_LENGTH)])
    confirm = PasswordField(_l("New password, again"), validators=[DataRequired(), Length(max=MAX_LENGTH)])


class CodeForm(FlaskForm):
    """A sign-in code: six digits from the app or an email, or a recovery code."""

    code = StringField(_l("Code"), validators=[DataRequired(), Length(max=64)])


class DisableMfaForm(FlaskForm):
    password = PasswordField(_l("Your password"), validators=[DataRequired(), Length(max=256)])
    code = StringField(_l("A current code"), validators=[DataRequired(), Length(max=64)])
