from django.shortcuts import render


def home(request):
    """The landing page after login: what this user's role can do."""
    return render(request, "home.html")
