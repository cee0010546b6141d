"""The application layer: the command line (:mod:`.cli`), the whole study as one resumable command
(:mod:`.pipeline`) and the report (:mod:`.report`). May import every other layer; nothing imports it.
"""
