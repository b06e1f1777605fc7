"""``fomc``: thin click commands over the public API (:mod:`~fomcodec.cli.main` holds the group
and the codec commands; :mod:`~fomcodec.cli.commands` batch and compare,
:mod:`~fomcodec.cli.face_commands` crop and prepare; :mod:`~fomcodec.cli.common` shared options
and clean failures). Imports anything; nothing imports it.
"""
