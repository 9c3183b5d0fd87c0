"""Every model, importable from one place."""

from portal_app.models.accounts import (
    ACCOUNT_TYPES,
    BULK_FLAGS,
    IMPORT_FLAGS,
    NOTIFICATION_CATEGORIES,
    SETTING_FLAGS,
    Account,
    AccountContact,
    AccountTag,
    Contact,
    ContactEmail,
    ContactSettings,
    default_notification_preferences,
)
from portal_app.models.activity import (
    TODO_ACTIONS,
    TODO_STATES,
    AuditEntry,
    InboxItem,
    InboxRead,
    Notification,
    OutboxEmail,
    Todo,
    TodoDocument,
)
from portal_app.models.firm import STAFF_ROLES, ApiToken, Firm, StaffUser, new_session_token
from portal_app.models.jobs import JOB_STATES, Job
from portal_app.models.mail import Document, InboundMessage, Message, MessageAttachment, Note, Thread
from portal_app.models.mfa import MFA_METHODS, EmailCode, RecoveryCode
from portal_app.models.portal import Invitation, LoginEvent, PortalUser
from portal_app.orm import utcnow

__all__ = [
    "ACCOUNT_TYPES",
    "BULK_FLAGS",
    "IMPORT_FLAGS",
    "NOTIFICATION_CATEGORIES",
    "SETTING_FLAGS",
    "STAFF_ROLES",
    "TODO_ACTIONS",
    "TODO_STATES",
    "Account",
    "AccountContact",
    "AccountTag",
    "ApiToken",
    "AuditEntry",
    "Contact",
    "Document",
    "ContactEmail",
    "ContactSettings",
    "EmailCode",
    "Firm",
    "InboundMessage",
    "InboxItem",
    "InboxRead",
    "Invitation",
    "JOB_STATES",
    "MFA_METHODS",
    "Job",
    "LoginEvent",
    "Message",
    "MessageAttachment",
    "Note",
    "Notification",
    "OutboxEmail",
    "PortalUser",
    "RecoveryCode",
    "StaffUser",
    "Thread",
    "Todo",
    "TodoDocument",
    "default_notification_preferences",
    "new_session_token",
    "utcnow",
]
