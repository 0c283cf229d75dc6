"""The offline render: a site's stack evaluated as ``pulumi preview`` would, and the policy check.

``values`` (wire values: secrets, unknowns), ``result`` (what a render returns), ``fakes`` (what
the cloud and the nodes would answer), ``loop`` (the render's event loops), ``render``
(:func:`~components.preview.render.render_stack`), ``output`` (the text a reviewer reads),
``policy_check`` (the policy pack on a render), ``cli`` (``python -m components render``) and
``benchmark`` (``python -m components benchmark``).
"""
