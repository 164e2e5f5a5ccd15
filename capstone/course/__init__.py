"""The course kit: stubs for students (`kit`), their code in the pipeline (`student`), grading.

The tasks, their points and checks live in `tasks`; `capstone.course_math` is the reference
every check compares against, with `compare`.
"""
