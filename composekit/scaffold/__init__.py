"""Scaffolding of `composekit init`: detect an app, pick a template, plan the files, write them."""
