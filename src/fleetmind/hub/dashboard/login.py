"""The sign-in page: a user name and password, or an API token."""

from nicegui import ui

from fleetmind.auth.errors import InvalidCredentials, LockedOut
from fleetmind.hub.dashboard import session
from fleetmind.hub.runtime import Hub


def register(hub: Hub) -> None:
    @ui.page("/login", title="FleetMind - sign in")
    def login_page() -> None:
        def attempt() -> None:
            if user.value.strip():
                with_password()
                return
            try:
                found = hub.auth.authorize(field.value.strip(), None, source=session.SOURCE)
            except InvalidCredentials:
                ui.notify("That token is not valid.", type="negative")
                return
            session.sign_in(found.token.id)
            ui.navigate.to("/")

        def with_password() -> None:
            try:
                _, token = hub.auth.login(user.value.strip(), password.value, source=session.SOURCE)
            except LockedOut as exc:
                ui.notify(f"Signed out for now: {exc}.", type="negative")
                return
            except InvalidCredentials:
                ui.notify("Unknown user or wrong password.", type="negative")
                return
            session.sign_in(token.id)
            ui.navigate.to("/")

        with ui.card().classes("absolute-center w-96"):
            ui.label("FleetMind").classes("text-h5")
            user = ui.input("User name").classes("w-full")
            password = ui.input("Password", password=True).classes("w-full")
            password.on("keydown.enter", attempt)
            ui.label("or").classes("self-center")
            field = ui.input("API token", password=True).classes("w-full")
            field.on("keydown.enter", attempt)
            ui.button("Sign in", on_click=attempt)
