# Targets for the usual tasks; each is a thin wrapper so that the scripts
# also work on a machine without make.

.PHONY: build test demo packages run-manager run-worker clean

build:
	cargo build --release --workspace --bins

test:
	./scripts/test.sh

demo:
	./scripts/demo.sh

# The .deb and .rpm packages of herd-managerd, herd-workerd and herd, in
# dist/; HERD_VERSION=0.1.1 make packages sets another version.
packages:
	./packaging/build.sh

# A manager on the default socket, /run/herd/managerd.sock.
run-manager: build
	./target/release/herd-managerd

# A worker that registers with the manager on the default socket.
run-worker: build
	./target/release/herd-workerd

clean:
	cargo clean
	rm -rf .demo dist
