from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

from config.malloc import reuse_large_buffers

reuse_large_buffers()  # deposits stream through here in large pieces
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()
