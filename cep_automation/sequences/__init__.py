"""Sequences: a lead's follow-up over days (nurture, course-start reminders), each step sent once, on time.

Declared as data (:mod:`.definition`), kept to marketing hours (:mod:`.calendar`), stored in PostgreSQL
(:mod:`.store`: enrollments and their steps), entered and left (:mod:`.lifecycle`). Each pending step is a job
held in ``scheduled_jobs`` (the run-at machinery) that ``sequence.step`` (actors/sequences.py) runs through the
effects ledger. Like ``domain/``, nothing here needs the broker.
"""
