"""ORM (sync): the app's models by domain, re-exported so that ``usermetrics.models.X`` names each one.

Importers and migrations keep writing ``from usermetrics.models import ...`` (and
``usermetrics.models.UserIdField``); the modules here are where each domain's tables live:
``fields`` (the user-id column and its key), ``identities``, ``history``, ``alerts``, ``prices`` and ``actions``.
"""

from usermetrics.models.actions import ActionKind as ActionKind
from usermetrics.models.actions import ActionOutcome as ActionOutcome
from usermetrics.models.actions import UserAction as UserAction
from usermetrics.models.alerts import AlertKind as AlertKind
from usermetrics.models.alerts import AlertRule as AlertRule
from usermetrics.models.alerts import Delivery as Delivery
from usermetrics.models.alerts import DeliveryState as DeliveryState
from usermetrics.models.alerts import Incident as Incident
from usermetrics.models.alerts import IncidentMember as IncidentMember
from usermetrics.models.alerts import Severity as Severity
from usermetrics.models.alerts import Silence as Silence
from usermetrics.models.fields import UserIdField as UserIdField
from usermetrics.models.fields import db_text as db_text
from usermetrics.models.fields import db_text_loaded as db_text_loaded
from usermetrics.models.fields import user_id_printable as user_id_printable
from usermetrics.models.fields import user_key as user_key
from usermetrics.models.history import LlmModel as LlmModel
from usermetrics.models.history import SourceSample as SourceSample
from usermetrics.models.history import TotalsHourly as TotalsHourly
from usermetrics.models.history import TotalsSample as TotalsSample
from usermetrics.models.history import UserHourly as UserHourly
from usermetrics.models.history import UserLife as UserLife
from usermetrics.models.history import UserSample as UserSample
from usermetrics.models.identities import Identity as Identity
from usermetrics.models.identities import IdentityKind as IdentityKind
from usermetrics.models.prices import ModelPrice as ModelPrice
