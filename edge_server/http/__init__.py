"""The HTTP surface: app factory and lifespan, native routes, the compatible APIs
(KServe v2, DeepStack), uploads, middleware, problem details and the page.
"""
