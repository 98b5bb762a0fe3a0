"""`python -m openstack_api init DB_URL TRANSPORT_URL`: (re)creates and fills the tables, and
deletes the notification queue (see __init__.py)."""
import sys

import kombu
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from . import __doc__ as usage
from .common import NOTIFICATION_TOPIC, PASSWORD, PROJECTS, ROLES, USERS, password_hash
from .models import Assignment, Base, Project, Role, User


def init(db_url, transport_url):
    engine = create_engine(db_url)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    with sessionmaker(bind=engine)() as session:
        session.add_all(Role(id=i + 1, name=name) for i, name in enumerate(ROLES))
        session.add_all(Project(id=p, name=f"project-{p}", description=f"bench project {p}")
                        for p in range(1, PROJECTS + 1))
        session.add_all(User(id=u, name=f"user-{u}", password_hash=password_hash(PASSWORD,
                                                                                f"s{u}"))
                        for u in range(1, USERS + 1))
        session.flush()
        # Each user has two roles on its own project and one on the next.
        session.add_all(Assignment(user_id=u, project_id=p, role_id=r)
                        for u in range(1, USERS + 1)
                        for p, r in (((u - 1) % PROJECTS + 1, 2), ((u - 1) % PROJECTS + 1, 3),
                                     (u % PROJECTS + 1, 3)))
        session.commit()
    engine.dispose()
    # The notifications of earlier runs would pile up in the broker: start from no queue
    # (the notifier declares it again).
    amqp_url = transport_url.replace("rabbit://", "amqp://", 1)
    with kombu.Connection(amqp_url) as connection:
        connection.default_channel.queue_delete(f"{NOTIFICATION_TOPIC}.info")


if len(sys.argv) != 4 or sys.argv[1] != "init":
    sys.exit(usage)
init(sys.argv[2], sys.argv[3])
